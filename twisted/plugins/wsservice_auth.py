from wsservice.auth.hook import HookPlugin
from wsservice.auth.tokens import JWTPlugin

jwt = JWTPlugin()
hook = HookPlugin()
