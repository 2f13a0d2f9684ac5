"""The HTTP surface: webhook routes, JSON API, health and metrics. Thin: parse, call, answer."""
