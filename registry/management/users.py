"""The --user option of the registry's commands: whom a command acts as."""
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from registry import access


def command_user(username, *, default=access.SYSTEM):
    """The user named `username`, or `default` when no name is given; CommandError if there is none."""
    if not username:
        return default
    try:
        return get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist as error:
        raise CommandError(f"There is no user {username!r}.") from error
