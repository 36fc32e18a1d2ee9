"""node/core/routing"""
