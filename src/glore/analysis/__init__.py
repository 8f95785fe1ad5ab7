"""glore.analysis"""
