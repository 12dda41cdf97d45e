"""Test doubles: the scripted OpenAI-compatible model; never imported by the data path.

server (ScriptedServer, serve_scripted) on connection (HTTP/1.1) with faults (latency, errors,
hangs); thread (start_scripted_in_thread) for synchronous code; policy (decide,
chat_completion) reads a conversation and plays it by the playbook.
"""
