"""Small helpers shared by two or more packages."""
