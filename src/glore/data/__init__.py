"""glore.data"""
