"""A local stand-in for Slack: its Web API and response_urls, its Block Kit rules, and a client
that sends what Slack sends (signed HTTP requests).

The test suite drives Token Desk through it; the app itself never imports this package.
"""
