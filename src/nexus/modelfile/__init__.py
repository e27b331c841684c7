"""modelfile"""
