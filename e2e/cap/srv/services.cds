// Two services: one that needs the Display role (a scope of the
// xs-security.json, <xsappname>.Display), and one any authenticated user,
// technical users included, may call to see how cds mapped the token.

@requires: 'Display'
@path: '/odata/v4/catalog'
service CatalogService {
  function hello() returns String;
}

@requires: 'authenticated-user'
@path: '/odata/v4/whoami'
service WhoAmIService {
  function whoami() returns LargeString;
}
