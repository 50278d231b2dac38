"""Keyset pages of the API's lists: a malformed `page_size` or `cursor` is a 400 naming it."""
from django.utils.translation import gettext as _
from rest_framework import pagination, serializers
from rest_framework.exceptions import NotFound


class CursorPages(pagination.CursorPagination):
    """DRF's cursor pagination, strict: DRF quietly uses the default for page_size=abc, 0 or -1 (and
    the maximum for a larger one) and answers a damaged cursor with 404."""

    page_size_query_param = "page_size"

    def get_page_size(self, request):
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        if not (value.isascii() and value.isdecimal() and 1 <= int(value) <= self.max_page_size):
            raise serializers.ValidationError({self.page_size_query_param: [
                _("Give a whole number from 1 to %(max)s, not %(value)s.") % {"max": self.max_page_size,
                                                                               "value": value[:20]}]})
        return int(value)

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except (NotFound, ValueError, TypeError) as error:  # undecodable, or a position of the wrong type
            raise serializers.ValidationError({self.cursor_query_param: [
                _("This cursor is damaged: use the next or previous link of a page as it came.")]}) from error

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size, default=self.page_size)
        return parameters
