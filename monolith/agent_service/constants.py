"""Constants shared by the serving agent."""

# Number of TCE shards the agent's deployment is split into.
HOST_SHARD_ENV = "MONOLITH_HOST_SHARD_N"
