# A Perdition posix_regex map: "pattern: result", first match wins.
^postmaster@(.*)$:          admin@store-a.example.net:143
^([^@]+)@example\.net$:     $1@store-a.example.net
^([^@]+)@([^.]+)\.example$: $1_$2@store-b.example.net:2143
