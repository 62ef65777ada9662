"""Web console: login, line page, station detail, defects; pages and assets are package data."""
