"""glore.models"""
