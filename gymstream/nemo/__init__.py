"""nemo"""
