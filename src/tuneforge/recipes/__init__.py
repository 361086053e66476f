"""Recipes: the scripts users run, composed of library parts."""
