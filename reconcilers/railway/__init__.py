"""Railway: deployments (deploy and roll back come with the Railway issue)."""
