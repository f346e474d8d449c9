"""The blue-green release steps, one module each: preflight, deploy (apply green, wait ready), preview, smoke
(pre- and post-switch checks), switch (selector patch + EndpointSlice verification), cleanup."""
