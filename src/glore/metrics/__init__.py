"""glore.metrics"""
