/** @odoo-module **/
// Backend smoke tour: the app opens from the apps menu and every menu's view renders.
import { registry } from "@web/core/registry";

function openMenu(section, item, viewSelector) {
    return [
        {
            content: `open ${section}`,
            trigger: `.o_menu_sections [data-menu-xmlid="saas_manager.${section}"]`,
            run: "click",
        },
        {
            content: `choose ${item}`,
            trigger: `.o-dropdown-item[data-menu-xmlid="saas_manager.${item}"]`,
            run: "click",
        },
        { content: `${item} renders`, trigger: viewSelector },
    ];
}

registry.category("web_tour.tours").add("saas_manager_backend_tour", {
    url: "/odoo",
    steps: () => [
        { content: "open the apps menu", trigger: ".o_navbar_apps_menu button", run: "click" },
        {
            content: "open SaaS Manager",
            trigger: '.o_app[data-menu-xmlid="saas_manager.menu_saas_root"]',
            run: "click",
        },
        {
            content: "the app opens on its dashboard",
            trigger: ".o_saas_dashboard .o_saas_tile_active",
        },
        ...openMenu("menu_saas_operations", "menu_saas_instance",
            ".o_breadcrumb:contains(Instances)"),
        ...openMenu("menu_saas_operations", "menu_saas_customer",
            ".o_breadcrumb:contains(Customers)"),
        ...openMenu("menu_saas_reporting", "menu_saas_kpi_report",
            ".o_breadcrumb:contains(Monthly Figures)"),
        ...openMenu("menu_saas_reporting", "menu_saas_mrr_report", ".o_graph_renderer"),
        ...openMenu("menu_saas_operations", "menu_saas_subscription",
            ".o_breadcrumb:contains(Subscriptions)"),
        ...openMenu("menu_saas_configuration", "menu_saas_template",
            ".o_kanban_record:contains(Restaurant)"),
        ...openMenu("menu_saas_configuration", "menu_saas_plan",
            ".o_kanban_record:contains(Professional):contains(Most popular)"),
        ...openMenu("menu_saas_configuration", "menu_saas_settings",
            ".o_setting_box:contains(Base Domain), .o_setting_container:contains(Base Domain)"),
    ],
});
