"""Temporary placeholder replaced below."""
def main(argv=None):
    return 0
