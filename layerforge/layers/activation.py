"""(family module: filled in by its owner)"""
