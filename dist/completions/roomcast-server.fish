complete -c roomcast-server -l config -d 'A TOML file with any of these settings (keys as in config/roomcast.toml)' -r -F
complete -c roomcast-server -l id -d 'Server ID, as an option (the same as the third argument)' -r
complete -c roomcast-server -l interface -d 'IPv4 address of the local interface to join on and send multicast from [default: chosen by the kernel\'s routing table]' -r
complete -c roomcast-server -l ttl -d 'Multicast TTL, 0 to 255: 0 keeps traffic on this host, 1 on the local network [default: 1]' -r
complete -c roomcast-server -l peer -d 'Another server\'s host, reached by unicast at ADDR:PORT (PORT: the group\'s port) besides multicast, where the network drops multicast. Repeat for each server; one server per address. Replaces `peers` in --config' -r
complete -c roomcast-server -l heartbeat-interval -d 'How often followers heartbeat the leader, in milliseconds [default: 200]' -r
complete -c roomcast-server -l heartbeat-timeout -d 'After this many milliseconds without an answer the leader is declared failed [default: 1000]' -r
complete -c roomcast-server -l election-timeout -d 'How long a candidate waits for a higher server to answer, in milliseconds [default: 200]' -r
complete -c roomcast-server -l service-delay -d 'The leader waits this long before answering a client (models load or distance) [default: 0]' -r
complete -c roomcast-server -l preempt-delay -d 'A server higher than the leader waits this long after it starts (and until it has caught up) before taking over, so that one restarting in a loop does not make the group flap [default: 0]' -r
complete -c roomcast-server -l catalog -d 'File with the rooms, timeslots and days [default: the built-in list, the same as config/catalog.toml]' -r -F
complete -c roomcast-server -l data-dir -d 'Directory to keep the log and snapshots in, so that the server comes back with its reservations after a restart [default: memory only]' -r -f -a "(__fish_complete_directories)"
complete -c roomcast-server -l min-replicas -d 'Confirm a write only once this many servers (the leader included) hold it, and refuse writes while fewer are reachable. With more than half of the group, a network partition cannot confirm conflicting writes; the smaller side refuses them instead [default: 1, every live server]' -r
complete -c roomcast-server -l log-level -d 'Log level: `off` logs nothing, `error` only errors, and each further level adds to the one before; `info` shows elections and heartbeat failures [default: $RUST_LOG, else info]' -r -f -a "off\t''
error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c roomcast-server -l on-leader -d 'Shell command run each time this server becomes the leader, with ROOMCAST_ROLE, ROOMCAST_LEADER, ROOMCAST_TERM and ROOMCAST_ID set' -r -f -a "(__fish_complete_command)"
complete -c roomcast-server -l on-follower -d 'Shell command run each time this server becomes a follower (same variables)' -r -f -a "(__fish_complete_command)"
complete -c roomcast-server -l key-file -d 'The group\'s server key file: every datagram is then sealed and authenticated (docs/security.md) [default: no keys, open to anyone on the network]' -r -F
complete -c roomcast-server -l metrics -d 'Serve Prometheus metrics over HTTP at ADDR:PORT, or PORT on 127.0.0.1 (`metrics` in --config; docs/operations.md lists them) [default: none]' -r
complete -c roomcast-server -l generate-key -d 'Write a new server key file (mode 600) and exit; copy it to every server' -r -F
complete -c roomcast-server -l issue-client-key -d 'Write the key of client NAME (from --key-file\'s first client master key) to FILE (mode 600) and exit; give FILE to that client only' -r
complete -c roomcast-server -l admin -d 'With --issue-client-key: the key may cancel anyone\'s reservations'
complete -c roomcast-server -s h -l help -d 'Print help (see more with \'--help\')'
complete -c roomcast-server -s V -l version -d 'Print version'
