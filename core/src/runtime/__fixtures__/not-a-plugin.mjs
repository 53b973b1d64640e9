export default { name: 'not-a-plugin', setup() {} };
