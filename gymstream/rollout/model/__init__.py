"""The model client: OpenAI-compatible Responses or Chat Completions, retries, transport."""
