"""GitHub: repositories, pull requests, issues, installations, n8n workflows, the App's
redeliveries."""
