"""What the security scenario's tests share: public addresses by host name, and the subscribers'
passwords the inventory's password lookup generated into .secrets/ beside the scenario's inventory."""

import os

from testlib import platforms

P = platforms()
SECRETS = os.path.join(os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]), ".secrets")


def pub(name):
    return P[name]["public_ipv4"]


def password(user):
    with open(os.path.join(SECRETS, user)) as fh:
        # The password lookup stores "PASSWORD salt=..." when it made the salt; the password is first.
        return fh.read().split()[0]
