from django.apps import AppConfig


class McpGatewayConfig(AppConfig):
    name = "mcp_gateway"
    verbose_name = "MCP gateway"

    def ready(self) -> None:
        from connections.signals import connection_disconnected

        from .services import revoke_keys_of_disconnected_connection

        connection_disconnected.connect(
            revoke_keys_of_disconnected_connection, dispatch_uid="revoke-disconnected-keys"
        )
