"""admm"""
