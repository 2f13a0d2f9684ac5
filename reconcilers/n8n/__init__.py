"""n8n's requests to the controller that are not about one agent or one Service."""
