"""Other APIs (OpenAI, Anthropic) translated to the native service and back."""
