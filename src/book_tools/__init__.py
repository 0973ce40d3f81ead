"""The book's publishing machinery: executing and stamping the chapters, and the speed ladder.

Readers import :mod:`mnist_helpers`; this package is what the maintainers (and CI) run to produce and
check what the published book shows.
"""
