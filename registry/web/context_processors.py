"""What the navigation offers the signed-in user (the pages themselves check access again)."""
from registry import access
from registry.security import two_factor


def navigation(request):
    user = request.user
    if two_factor.pending_step(user):  # nothing to offer before the second step of signing in
        return {"nav_hidden": True}
    return {"nav_can_import": access.can_import(user), "nav_can_export": access.can_export(user),
            "nav_security_log": access.is_coordinator(user), "nav_freezes": access.is_coordinator(user),
            "nav_deleted_records": bool(access.readable_centre_codes(user))}
