// Handlers of srv/services.cds: report what cds made of the request's token.
const cds = require('@sap/cds');

module.exports = cds.service.impl(function () {
  if (this.name === 'CatalogService') {
    this.on('hello', (req) => `hello ${req.user.id}`);
  }
  if (this.name === 'WhoAmIService') {
    this.on('whoami', (req) => {
      const { user, tenant } = cds.context;
      const roles = Object.keys(user.roles ?? {}).filter((r) => user.is(r));
      return JSON.stringify({
        id: user.id,
        tenant,
        roles,
        attr: user.attr,
        reqUserIsContextUser: req.user === user,
      });
    });
  }
});
