"""What connections tells the apps built on it. It listens to none of its own signals
(STYLE.md: our own logic calls services); these exist so that connections never imports
the gateway."""

from django.dispatch import Signal

# Sent inside the transaction in which an owner disconnected a connection, with
# connection=, by= and ip=. The gateway revokes the connection's API keys for good, so
# connecting the workspace again later doesn't quietly bring them back.
connection_disconnected = Signal()
