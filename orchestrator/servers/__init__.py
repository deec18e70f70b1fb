"""ComfyUI servers: the client, dispatch and failover, `podium comfy up`."""
