"""Names shared by the controller server and its clients."""

# Written by ServerHook into the model dir: the "host:port" the Controller service listens on.
SERVER_ADDR_FILENAME = "controller_server_addr.txt"
