"""Query parameters: one an endpoint does not know is a 400 naming it, never silently ignored (a
typo such as ?centers=MUC would otherwise answer every centre)."""
from django.utils.translation import gettext as _
from rest_framework import serializers

UNKNOWN = "unknown_parameter"


class KnownQueryParameters:
    """Mixin of every REST and analysis view. What a view knows: `query_parameters`, those of an
    action (`action_query_parameters`), and on a list its filters' and pages' (as documented)."""

    query_parameters = ()
    action_query_parameters = {}

    def known_query_parameters(self):
        action = getattr(self, "action", None)
        names = {*self.query_parameters, *self.action_query_parameters.get(action, ())}
        if action == "list":
            for backend in getattr(self, "filter_backends", ()):
                names |= {parameter["name"] for parameter in backend().get_schema_operation_parameters(self)}
            if getattr(self, "paginator", None) is not None:
                names |= {parameter["name"] for parameter in self.paginator.get_schema_operation_parameters(self)}
        return names

    def initial(self, request, *args, **kwargs):
        # Before DRF's own steps: its content negotiation answers an unknown ?format= with a 404.
        # A method the view does not take is its 405, whatever the parameters.
        if request.method.lower() in self.http_method_names and hasattr(self, request.method.lower()):
            self.check_query_parameters(request)
        super().initial(request, *args, **kwargs)

    def check_query_parameters(self, request):
        known = self.known_query_parameters()
        unknown = [name for name in request.query_params if name not in known]
        if unknown:
            listed = ", ".join(sorted(known)) or _("none")
            raise serializers.ValidationError(
                {name[:100]: [serializers.ErrorDetail(
                    _("This endpoint has no query parameter %(name)s; it knows: %(known)s.")
                    % {"name": name[:100], "known": listed}, code=UNKNOWN)] for name in unknown})
        if "format" in request.query_params:
            formats = sorted(renderer.format for renderer in self.get_renderers())
            if request.query_params["format"] not in formats:
                raise serializers.ValidationError({"format": [_("Use one of: %(formats)s.")
                                                              % {"formats": ", ".join(formats)}]})
