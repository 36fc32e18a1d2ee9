"""protocol/accounting"""
