"""Serializer fields of the API where DRF's are looser than the schema they document: DRF turns 0
into "0" for a text field and 0 or "yes" into false/true for a boolean one, so a client's type
error would pass unnoticed where the OpenAPI schema says it is wrong."""
from rest_framework import serializers


class _OnlyStrings:
    default_error_messages = {"not_a_string": serializers.CharField.default_error_messages["invalid"]}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictCharField(_OnlyStrings, serializers.CharField):
    pass


class StrictRegexField(_OnlyStrings, serializers.RegexField):
    pass


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data
