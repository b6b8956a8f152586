from oauth2_provider.oauth2_validators import OAuth2Validator

UNVERIFIED = "unverified-email"


class Validator(OAuth2Validator):
    """The provider's claims: the user's email (verified unless the user is in the
    `unverified-email` group) and name."""

    def get_additional_claims(self, request):
        user = request.user
        return {
            "email": user.email,
            "email_verified": not user.groups.filter(name=UNVERIFIED).exists(),
            "given_name": user.first_name,
            "family_name": user.last_name,
        }
