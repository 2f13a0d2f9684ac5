"""Agents: their versions, runs, schedules and cron."""
