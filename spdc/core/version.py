"""The package version, kept in the bottom layer so every layer can record it without importing the API."""

VERSION = "0.1.0"
