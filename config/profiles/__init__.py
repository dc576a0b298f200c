"""Bundled regime profiles (TOML), shipped as package data of s321.profiles."""
