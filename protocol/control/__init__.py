"""protocol/control"""
