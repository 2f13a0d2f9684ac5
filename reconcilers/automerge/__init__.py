"""Auto-merge: pull requests that merge themselves once the Policy holds (issue 21; so far the
judgement of what blocks a pull request, `conditions`)."""
