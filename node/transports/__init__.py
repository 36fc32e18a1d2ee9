"""node/transports"""
