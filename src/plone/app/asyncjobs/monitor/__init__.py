"""A monitor server for operators, compatible with zc.z3monitor's.

Operators send one-line commands over TCP or a Unix socket
(``echo monitor | nc localhost 8081``) and read plain-text or JSON answers.
`.server` is the server, `.interfaces` the plugin contract, `.commands` the
process and database commands, `.databases` the registry of the databases
those commands report on, and ``configure.zcml`` registers the commands.
"""
