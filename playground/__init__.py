"""The playground: Token Desk and a stand-in Slack on this machine, in a browser page."""
