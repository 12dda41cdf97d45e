"""rollout/model"""
