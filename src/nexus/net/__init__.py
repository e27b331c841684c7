"""Network clients shared by the server's floors."""
