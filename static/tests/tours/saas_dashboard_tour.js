/** @odoo-module **/
// The operator logs in and lands on the SaaS dashboard; a tile opens the records behind
// its number, and the graphs render.
import { registry } from "@web/core/registry";

registry.category("web_tour.tours").add("saas_dashboard_tour", {
    url: "/odoo",
    steps: () => [
        {
            content: "landed on the dashboard, one instance down",
            trigger: ".o_saas_dashboard .o_saas_tile_down:contains(1):contains(Down Now)",
        },
        {
            content: "the MRR graph renders",
            trigger: ".o_saas_dashboard_mrr .o_graph_renderer canvas",
        },
        {
            content: "the subscriptions graph renders",
            trigger: ".o_saas_dashboard_states .o_graph_renderer canvas",
        },
        { content: "open the instances down", trigger: ".o_saas_tile_down", run: "click" },
        { content: "the instance that is down", trigger: ".o_data_row:contains(Dashdown)" },
        {
            content: "only it",
            trigger: ".o_list_renderer:not(:has(.o_data_row:contains(Dashup)))",
        },
        {
            content: "back to the dashboard",
            trigger: ".o_breadcrumb .breadcrumb-item:contains(SaaS Dashboard)",
            run: "click",
        },
        { content: "open the MRR", trigger: ".o_saas_tile_mrr", run: "click" },
        { content: "the monthly figures", trigger: ".o_breadcrumb:contains(Monthly Figures)" },
    ],
});
