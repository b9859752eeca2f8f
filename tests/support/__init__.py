"""Helpers the tests share: a loopback sshd board, fake jtop services, resume helpers, a CDP client."""
