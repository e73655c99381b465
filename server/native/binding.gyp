# Native addons: the DHCP socket (interface mode), sendfile(2) for HTTP artifacts (optional;
# the HTTP server falls back to streams without it) and the TFTP transfer socket (optional; TFTP
# falls back to dgram without it). src/poll_socket.c is the lifetime/callback code the two UDP
# socket addons share (compiled into each). Built by `npm install`/`npm rebuild` through the
# package.json "install" script; relay-mode DHCP works without it. See docs/dhcp-sockets.md.
{
  "targets": [
    {
      "target_name": "metalman_dhcp_socket",
      "sources": ["src/device_socket.c", "src/poll_socket.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS!='linux'", {"type": "none", "sources!": ["src/device_socket.c", "src/poll_socket.c"]}]
      ]
    },
    {
      "target_name": "metalman_sendfile",
      "sources": ["src/sendfile.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS!='linux'", {"type": "none", "sources!": ["src/sendfile.c"]}]
      ]
    },
    {
      "target_name": "metalman_udp",
      "sources": ["src/udp_socket.c", "src/udp_listener.c", "src/poll_socket.c", "src/lockstep.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS!='linux'", {"type": "none", "sources!": ["src/udp_socket.c", "src/udp_listener.c", "src/poll_socket.c", "src/lockstep.c"]}]
      ]
    },
    {
      "target_name": "metalman_open_beneath",
      "sources": ["src/open_beneath.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS!='linux'", {"type": "none", "sources!": ["src/open_beneath.c"]}]
      ]
    }
  ]
}
