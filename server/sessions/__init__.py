"""Sign-in sessions of the web client, and the ENT's OpenID provider it signs in with."""
