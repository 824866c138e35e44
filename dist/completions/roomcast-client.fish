complete -c roomcast-client -l interface -d 'Local address to send from and receive replies on (default: chosen by the kernel\'s routes)' -r
complete -c roomcast-client -l ttl -d 'Multicast time-to-live, 0 to 255: 0 keeps requests on this host, 1 on the local network' -r
complete -c roomcast-client -l peer -d 'A server\'s host to send each request to by unicast as well, at ADDR:PORT (PORT: the group\'s port), where the network drops multicast. Repeat for each server' -r
complete -c roomcast-client -l timeout -d 'Total time to wait for an answer, in milliseconds' -r
complete -c roomcast-client -l linger -d 'After an answer, listen this many milliseconds more for a second server\'s reply, reported as an error (exit 3); 0 does not wait. A late second reply is still reported while a session runs on' -r
complete -c roomcast-client -l key-file -d 'This client\'s key file, for a group with keys (made by `roomcast-server --issue-client-key NAME FILE`; readable by its owner only)' -r -F
complete -c roomcast-client -l stop-on-error -d 'End a session at the first command that does not succeed (refused, malformed, unanswered), with its exit status'
complete -c roomcast-client -l prompt -d 'Print the `Next command: ` prompt on standard output even when standard input is not a terminal, for programs that drive the client through pipes and wait for the prompt'
complete -c roomcast-client -l json -d 'Print each outcome as one line of JSON (for scripts)'
complete -c roomcast-client -s h -l help -d 'Print help (see more with \'--help\')'
complete -c roomcast-client -s V -l version -d 'Print version'
