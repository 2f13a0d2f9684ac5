"""GitOps: manifest sources, pull request plans, applied objects, policies, the diff, what is
reported to GitHub."""
